// The backend API client: one place that knows URLs, the bearer token and the error shape
// {"error": {"code", "message", ...}}.  Every failure becomes an ApiError (the server answered) or a
// NetworkError (it did not), so screens can tell "wrong password" from "backend unreachable".

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
  }

  // 5xx and gateway errors: worth retrying, like an unreachable backend.
  get transient() {
    return this.status >= 500 || this.status === 429;
  }
}

export class NetworkError extends Error {
  constructor() {
    super('The MV-OS backend cannot be reached.');
    this.name = 'NetworkError';
  }
}

export function isTransient(err) {
  return err instanceof NetworkError || (err instanceof ApiError && err.transient);
}

export function createApi({ base, getToken, onUnauthorized }) {
  async function request(method, path, { body, auth = true, extraHeaders = {} } = {}) {
    const headers = { Accept: 'application/json', ...extraHeaders };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const token = auth ? getToken() : null;
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch {
      throw new NetworkError();
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null; // e.g. an HTML 502 page from a load balancer
    }
    if (!response.ok) {
      const error = (data && typeof data.error === 'object' && data.error) || {};
      const err = new ApiError(
        response.status,
        error.code || `http_${response.status}`,
        error.message || `The server answered ${response.status} ${response.statusText}.`.trim(),
        error,
      );
      if (response.status === 401 && token) onUnauthorized(err);
      throw err;
    }
    return data;
  }

  return {
    login: (email, password) => request('POST', '/auth/login', { body: { email, password }, auth: false }),
    me: () => request('GET', '/me'),
    conversations: (page, perPage) => request('GET', `/conversations?page=${page}&per_page=${perPage}`),
    messages: (id, page, perPage) =>
      request('GET', `/conversations/${encodeURIComponent(id)}/messages?page=${page}&per_page=${perPage}`),
    // `key`: the Idempotency-Key; the same text sent again with the same key is never delivered twice.
    send: (id, text, key) =>
      request('POST', `/conversations/${encodeURIComponent(id)}/messages`, {
        body: { text },
        extraHeaders: key ? { 'Idempotency-Key': key } : {},
      }),
    logout: () => request('POST', '/auth/logout'),
  };
}
