"""The Gradio demo's support code (may import every layer below: dataset, models, inference, experiment)."""
