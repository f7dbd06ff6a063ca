// kiln's API reference: Swagger UI on kiln's own OpenAPI document, with
// nothing loaded from elsewhere (no validator badge, no remote config).
window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    displayOperationId: true,
    validatorUrl: null,
    docExpansion: 'list',
    persistAuthorization: false,
    tryItOutEnabled: false,
    queryConfigEnabled: false,
  });
});
