// The JSON API under /api/. A state-changing call carries the CSRF token that only this
// console's own pages can read (GET /api/session answers same-origin scripts only).

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function answer(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = body && body.message ? body.message : `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return body;
}

export async function getJSON(path) {
  const response = await fetch(path, {
    headers: { Accept: "application/json" },
    credentials: "same-origin",
    cache: "no-store",
  });
  return answer(response);
}

let session = null;

function currentSession() {
  if (session === null) {
    session = getJSON("/api/session").catch((err) => {
      session = null; // ask again next time
      throw err;
    });
  }
  return session;
}

export async function postJSON(path, body = {}) {
  const s = await currentSession();
  const response = await fetch(path, {
    method: "POST",
    headers: {
      Accept: "application/json",
      "Content-Type": "application/json",
      [s.csrf_header]: s.csrf_token,
    },
    credentials: "same-origin",
    body: JSON.stringify(body),
  });
  return answer(response);
}
