"""Gradio app and `redex` command line: thin handlers over engine/ and visualizers/."""
