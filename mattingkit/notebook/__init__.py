"""What only a notebook needs: figures (``plotting``, ``diagram``), sliders (``widgets``),
the chapter-07 studio (``studio`` and its widget-free logic ``studio_logic``), the chapter-08
webcam widget (``webcam``, with its browser code in ``static/``) and the self-checking
exercises (``exercises``).

May import anything in mattingkit; nothing in mattingkit imports it.
"""
