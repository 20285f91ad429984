// Starts Swagger UI (/docs) or ReDoc (/redoc) on the service's own OpenAPI document,
// from assets served by the service itself: no CDN, no inline script.
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  const swagger = document.getElementById("swagger-ui");
  if (swagger && window.SwaggerUIBundle) {
    window.ui = window.SwaggerUIBundle({
      url: swagger.dataset.openapi,
      dom_id: "#swagger-ui",
      layout: "BaseLayout",
      deepLinking: true,
      showExtensions: true,
      showCommonExtensions: true,
      presets: [window.SwaggerUIBundle.presets.apis, window.SwaggerUIBundle.SwaggerUIStandalonePreset],
    });
  }
  const redoc = document.getElementById("redoc");
  if (redoc && window.Redoc) window.Redoc.init(redoc.dataset.openapi, {}, redoc);
});
