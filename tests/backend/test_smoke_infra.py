import requests


def test_login_and_me(client, user, auth_headers):
    response = client.get("/api/me", headers=auth_headers)
    assert response.status_code == 200
    assert response.get_json()["email"] == "operator@example.com"


def test_live_server_is_ready(live_server):
    response = requests.get(live_server.url + "/readyz", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
