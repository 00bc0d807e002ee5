{{/*
Names and labels shared by every template. The label set is the standard app.kubernetes.io/*
one, so `kubectl get all -l app.kubernetes.io/instance=<release>` finds everything.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "catalyst-ocr-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name, 63 characters at most (a DNS label). */}}
{{- define "catalyst-ocr-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "catalyst-ocr-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the operator's pod: stable across upgrades. */}}
{{- define "catalyst-ocr-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "catalyst-ocr-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Every object's labels. */}}
{{- define "catalyst-ocr-operator.labels" -}}
helm.sh/chart: {{ include "catalyst-ocr-operator.chart" . }}
{{ include "catalyst-ocr-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: catalyst-ocr
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "catalyst-ocr-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "catalyst-ocr-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* <repository>:<tag>, the tag defaulting to the chart's appVersion (the package version). */}}
{{- define "catalyst-ocr-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The default OCR service image for OcrDeployments that name none. */}}
{{- define "catalyst-ocr-operator.serviceImage" -}}
{{- printf "%s:%s" .Values.serviceImage.repository (default .Chart.AppVersion .Values.serviceImage.tag) }}
{{- end }}
