"""What the app tells the person using it and the one running it: a user's mistake is a message on the page and no
traceback in the log, and the server's log does not suggest a share link the app never makes."""

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError


def test_a_users_mistake_is_a_message_not_a_logged_traceback(served_app, app_video, capfd):
    client = Client(served_app.local_url, verbose=False)
    capfd.readouterr()
    with pytest.raises(AppError, match=r"repeat 'cup'; expected distinct answers"):
        client.predict(handle_file(str(app_video)), "what did the person hold?", "cup\ncup", api_name="/answer")
    with pytest.raises(AppError, match="no question"):
        client.predict(handle_file(str(app_video)), "", "", api_name="/answer")
    logged = capfd.readouterr()
    assert "Traceback" not in logged.err + logged.out


def test_launching_prints_where_it_serves_and_no_share_link_hint(answerer, capfd, monkeypatch):
    import gradio
    from tests.app.app_testing import free_port

    from training.app import launch_app

    monkeypatch.setattr(gradio.Blocks, "block_thread", lambda self: None)  # serve, then return instead of waiting
    capfd.readouterr()
    app = launch_app(answerer, host="127.0.0.1", port=free_port(), block=True)
    try:
        logged = capfd.readouterr()
        assert logged.out.strip().splitlines() == [f"mist app: serving on {app.local_url} (Ctrl-C to stop)"]
        assert "share=True" not in logged.out + logged.err
    finally:
        app.close()
