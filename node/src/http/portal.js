// Every page's script: signing out (DELETE /api/v1/session with the page's CSRF token).
(function () {
  'use strict';
  var button = document.getElementById('logout');
  if (!button) return;
  button.addEventListener('click', function () {
    var csrf = document.querySelector('meta[name=csrf-token]').content;
    fetch('/api/v1/session', { method: 'DELETE', headers: { 'X-CSRF-Token': csrf }, credentials: 'same-origin' })
      .then(function () { location.href = '/'; });
  });
})();
