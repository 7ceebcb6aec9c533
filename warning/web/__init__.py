"""The web app: API, webhooks, feeds and dashboard."""
