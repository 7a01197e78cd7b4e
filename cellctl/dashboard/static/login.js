// The login form posts JSON (the server takes no cross-site form) and goes to the page on success.
document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = JSON.stringify({name: document.getElementById("name").value,
                               password: document.getElementById("password").value});
  const reply = await fetch("/login", {method: "POST", headers: {"Content-Type": "application/json"}, body});
  const data = await reply.json().catch(() => ({message: `error ${reply.status}`}));
  if (reply.ok) { location.href = "/"; } else { document.getElementById("error").textContent = data.message; }
});
