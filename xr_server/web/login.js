// Sign-in form: POST /api/login sets the HttpOnly session cookie; then go where the user wanted.
const form = document.getElementById("login-form");
const error = document.getElementById("login-error");

function nextPage() {
  const next = new URLSearchParams(window.location.search).get("next") || "/";
  // Only local paths: no "//host" or "/\host" open redirects.
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const body = {username: form.username.value, password: form.password.value};
  try {
    const response = await fetch("/api/login", {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
      credentials: "same-origin",
    });
    if (response.ok) {
      window.location.assign(nextPage());
      return;
    }
    const data = await response.json().catch(() => ({}));
    error.textContent = data.error || `sign-in failed (${response.status})`;
  } catch (e) {
    error.textContent = `server unreachable: ${e.message}`;
  }
  error.hidden = false;
});
