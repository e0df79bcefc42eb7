"""The playground's models: loaded once on first use, the oldest unloaded when another run needs room."""

from __future__ import annotations

from tunesmith.run_dir import RunDir
from tunesmith.ui import playground
from tunesmith.ui.playground import Playground


def test_a_run_loads_once_and_the_least_recently_used_makes_room(runs_dir, monkeypatch):
    monkeypatch.setattr(playground, "KEEP_LOADED", 1)
    models = Playground()
    try:
        first = models.load(RunDir(runs_dir / "spam-done"))
        assert models.load(RunDir(runs_dir / "spam-done")) is first
        assert first.base.engine is first.tuned.engine  # an adapter run and its base share one engine
        second = models.load(RunDir(runs_dir / "spam-full"))
        assert second.base.engine is not second.tuned.engine  # a full fine-tune's base loads apart
        assert not first.tuned.engine._thread.is_alive()  # unloaded to make room
        assert second.tuned.engine._thread.is_alive()
    finally:
        models.close()
    assert not second.tuned.engine._thread.is_alive() and not second.base.engine._thread.is_alive()
