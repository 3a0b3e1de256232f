// The access token lives in sessionStorage: it survives a reload of this tab, not the closing of it, and it
// is never shared with other tabs.  The expiry from the login answer lets us send a person back to the
// login screen before the first request fails.

const KEY = 'mv-os.session';

export function loadSession() {
  try {
    const raw = sessionStorage.getItem(KEY);
    if (!raw) return null;
    const session = JSON.parse(raw);
    if (typeof session.token !== 'string' || typeof session.expiresAt !== 'number') return null;
    return session;
  } catch {
    return null;
  }
}

export function saveSession(login) {
  const session = {
    token: login.access_token,
    expiresAt: Date.now() + Number(login.expires_in || 0) * 1000,
  };
  sessionStorage.setItem(KEY, JSON.stringify(session));
  return session;
}

export function clearSession() {
  sessionStorage.removeItem(KEY);
}

export function isExpired(session) {
  return !session || Date.now() >= session.expiresAt;
}
