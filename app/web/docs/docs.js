// Starts the vendored Swagger UI (swagger-ui/) on this API's OpenAPI document.
// An external file because the docs page's Content-Security-Policy allows no inline script.
"use strict";

const root = document.getElementById("swagger-ui");
window.ui = SwaggerUIBundle({
  url: root.dataset.openapi,
  domNode: root,
  deepLinking: true,
  validatorUrl: "none", // no badge fetched from validator.swagger.io
});
