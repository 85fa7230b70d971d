// Swagger UI for /docs, started from a file rather than an inline script (the pages run under a strict CSP).
// validatorUrl null: Swagger UI would otherwise ask validator.swagger.io about the spec (an outside request).
window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({ url: root.dataset.spec, dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null });
});
