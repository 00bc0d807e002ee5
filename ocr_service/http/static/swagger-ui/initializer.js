// Catalyst OCR: render the service's own OpenAPI document (served at ../openapi.json
// relative to /docs), with nothing fetched from outside the service.
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: new URL("openapi.json", window.location.href).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
};
