"""The Gradio demo's support (``demo_gradio.py`` is the thin app): model list, prediction with metrics,
uploads checked and bounded, and the load test that drives a served demo.

May import: anything below it. Nothing in ``src`` imports it.
"""
