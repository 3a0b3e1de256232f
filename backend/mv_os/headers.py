"""Security headers on every response the app sends, whoever answers it (Flask's views and error handlers,
the webhook fast path): the outermost WSGI layer (`create_app` installs it last).

- `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` and `X-Frame-Options: DENY` everywhere;
- a Content-Security-Policy everywhere: the frontend's own (frontend.py) on what it serves, and on everything
  else (JSON, the handshake's text/plain) `default-src 'none'`: nothing an API answer could make a browser load;
- `Strict-Transport-Security` in the deployed environments (App Runner terminates TLS in front of us);
- a `Location` header is made relative: a redirect never sends the browser to the client's `Host` header."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
HSTS = "max-age=31536000; includeSubDomains"


class SecurityHeaders:
    def __init__(self, wsgi_app, *, hsts: bool):
        self.wsgi_app = wsgi_app
        self.always = [
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("X-Frame-Options", "DENY"),
            ("Content-Security-Policy", API_CSP),
        ]
        if hsts:
            self.always.append(("Strict-Transport-Security", HSTS))

    def __call__(self, environ, start_response):
        def with_headers(status, headers, exc_info=None):
            present = {name.lower() for name, _ in headers}
            headers = [(n, relative(v) if n.lower() == "location" else v) for n, v in headers]
            headers += [(n, v) for n, v in self.always if n.lower() not in present]
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, with_headers)


def relative(location: str) -> str:
    """`https://evil.example/x?y` -> `/x?y`: the path of this app, never another host."""
    parts = urlsplit(location)
    if not parts.scheme and not parts.netloc:
        return location
    return urlunsplit(("", "", "/" + parts.path.lstrip("/"), parts.query, parts.fragment))
