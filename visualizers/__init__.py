"""Pure functions: result -> plotly Figure, PIL image, or caption text. No model calls, no gradio."""
