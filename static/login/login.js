// Progressive enhancement for the login form: the page works without this file (a plain
// form POST); with it, only the fields of the chosen method are shown and the answer is
// shown in place. No external script, no inline script (the CSP forbids both).
(function () {
  "use strict";
  var form = document.getElementById("login");
  if (!form || !window.fetch) { return; }
  document.documentElement.className += " js";
  var fields = form.querySelectorAll("[data-method]");
  function show() {
    var chosen = form.querySelector("input[name=method]:checked").value;
    for (var i = 0; i < fields.length; i++) {
      fields[i].hidden = fields[i].getAttribute("data-method") !== chosen;
    }
  }
  var radios = form.querySelectorAll("input[name=method]");
  for (var i = 0; i < radios.length; i++) { radios[i].addEventListener("change", show); }
  show();
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var button = document.getElementById("submit");
    button.disabled = true;
    var body = new URLSearchParams(new FormData(form));
    fetch(form.action, {
      method: "POST",
      headers: { "Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded" },
      body: body,
      credentials: "omit",
      referrerPolicy: "same-origin"
    }).then(function (response) { return response.json(); }).then(function (answer) {
      var message = document.getElementById("message");
      if (!message) {
        message = document.createElement("p");
        message.id = "message";
        form.parentNode.insertBefore(message, form);
      }
      message.className = "message " + (answer.ok ? "success" : "error");
      message.setAttribute("role", answer.ok ? "status" : "alert");
      message.textContent = answer.message;
      document.querySelector("h1").textContent = answer.title;
      if (answer.ok || answer.final) {
        form.parentNode.removeChild(form);
      } else {
        button.disabled = false;
        var secrets = form.querySelectorAll("input[type=password]");
        for (var j = 0; j < secrets.length; j++) { secrets[j].value = ""; }
      }
    }).catch(function () {
      button.disabled = false;
      form.submit();
    });
  });
}());
