// Starts Swagger UI on /api/v1/docs. A file, not an inline script, so the hub's CSP
// (script-src 'self') holds on this page too.
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({ url: root.dataset.openapi, dom_id: "#swagger-ui", deepLinking: true });
});
