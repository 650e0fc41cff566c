// Starts Swagger UI on the spec served beside this page. A file, not an inline script, so the page runs under
// a CSP without 'unsafe-inline' for scripts (and never 'unsafe-eval').
/* global SwaggerUIBundle */
window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({
    url: new URL('openapi.json', window.location.href).toString(),
    dom_id: '#swagger-ui',
    deepLinking: true,
    // No call to the public validator.swagger.io badge: the page works offline.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
    persistAuthorization: false,
    tryItOutEnabled: false,
  });
});
