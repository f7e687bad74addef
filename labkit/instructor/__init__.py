"""The instructor's and the setup tools: not read by lessons.

Student versions and the course runner (``course``), the gradebook, asset packs and the
doctor. Each is reached through ``python -m labkit ...``; see the README's commands table.
"""
