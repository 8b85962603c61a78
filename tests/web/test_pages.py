"""The two HTML pages render with the token, the pipeline list and the id."""

from __future__ import annotations

from tests.web.conftest import TOKEN, shell_pipeline


def test_index_lists_pipelines_and_carries_the_token(workspace, client):
    shell_pipeline(workspace)
    r = client.get("/")
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert f'<meta name="pipeloom-token" content="{TOKEN}">' in html
    assert 'href="/pipelines/flow"' in html


def test_index_empty_state(client):
    html = client.get("/").get_data(as_text=True)
    assert 'href="/pipelines/' not in html


def test_studio_page(workspace, client):
    shell_pipeline(workspace)
    r = client.get("/pipelines/flow")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert '<meta name="pipeloom-pipeline" content="flow">' in html
    assert f'content="{TOKEN}"' in html
    assert client.get("/pipelines/nope").status_code == 404


def test_login_by_url_then_pages_by_cookie(workspace, client):
    shell_pipeline(workspace)
    r = client.get(f"/pipelines/flow?token={TOKEN}", auth=False)
    assert r.status_code == 302 and r.headers["Location"] == "/pipelines/flow"
    page = client.get("/pipelines/flow", auth=False)
    assert page.status_code == 200
    assert client.get("/static/js/studio.js", auth=False).status_code == 200
    assert client.get("/api/pygments.css", auth=False).status_code == 200
