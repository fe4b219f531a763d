"""Stand-in for ``google.colab.output``: records that the custom widget manager was asked for.

anywidget (0.9.21) reads ``output._widgets._installed_url`` once the manager is on, to name
it in the widget's display metadata; on Colab it is the manager's script on
ssl.gstatic.com. The stand-in gives a URL of the same shape.
"""

from __future__ import annotations

import types

_widgets = types.SimpleNamespace(_installed_url=None)
_MANAGER = (
    "https://ssl.gstatic.com/colaboratory-static/widgets/colab-cdn-widget-manager/"
    "stand-in/manager.min.js"
)


def enable_custom_widget_manager() -> None:
    from google.colab import record

    _widgets._installed_url = _MANAGER
    record("output.enable_custom_widget_manager")


def disable_custom_widget_manager() -> None:
    from google.colab import record

    _widgets._installed_url = None
    record("output.disable_custom_widget_manager")
