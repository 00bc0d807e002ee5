"""Catalyst OCR operator: reconciles `OcrDeployment` resources into a running OCR service.

`spec` parses a custom resource into a typed value, `builders` turn that value into the
child manifests, and the runtime modules (handlers, apply, status) talk to the cluster.
"""
