"""The web UI: static files only (index.html, ES modules, style.css), mounted at / by
``podcap.api.app``. See docs/UI.md."""
