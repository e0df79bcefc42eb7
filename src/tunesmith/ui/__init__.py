"""The local web UI (`tunesmith ui`): the runs at a glance, a run's live curves and evaluation, runs compared, a
playground that chats with a run's model and its base, the blind A/B review pages over `tunesmith.review`, and the
labeling pages over `tunesmith.label`'s queues."""

from tunesmith.ui.app import create_ui_app, serve_ui
from tunesmith.ui.pages import UiSettings

__all__ = ["UiSettings", "create_ui_app", "serve_ui"]
