"""The ceiling: a bare Flask app that reads the body and answers 200, run under the same gunicorn.conf.py."""

from flask import Flask, request

app = Flask(__name__)


@app.post("/webhooks/whatsapp")
def receive():
    request.get_data(cache=False)
    return {"status": "ok"}


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
