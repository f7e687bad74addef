"""Instructor and setup tools, reached through ``python -m labkit ...``; lessons never read them."""
