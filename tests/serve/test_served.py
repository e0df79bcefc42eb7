"""What `tunesmith serve` loads for a run continuing from another (`model.init_from`): its adapter on that run's
merged weights, served as the run and with that model as ``base``; never on one base with runs of the plain model."""

from __future__ import annotations

from pathlib import Path

import httpx
import torch

from tunesmith.models import load_tuned_model, portable_name
from tunesmith.run_dir import RunDir
from tunesmith.serve.served import effective_base, load_served

TOKENS = torch.tensor([[1, 40, 77, 150, 9, 300, 2, 64]])
CPU = torch.device("cpu")


def logits_of(model) -> torch.Tensor:
    with torch.no_grad():
        return model(TOKENS).logits


def test_a_continuing_run_is_served_on_the_merged_weights_it_trained_on(init_from_run, lora_run):
    name = Path(init_from_run).name
    served = load_served([str(init_from_run)], device=CPU)
    served.model.set_adapter(name)
    assert torch.allclose(logits_of(served.model), logits_of(load_tuned_model(init_from_run, CPU)[0]), atol=1e-5)
    with served.model.disable_adapter():  # what `base` answers with: the SFT model
        assert torch.allclose(logits_of(served.model), logits_of(load_tuned_model(lora_run, CPU, merge=True)[0]),
                              atol=1e-5)


def test_it_answers_requests(init_from_run, start_server):
    name = Path(init_from_run).name
    url, _ = start_server(lambda: load_served([str(init_from_run)], device=CPU))
    body = {"model": name, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 3, "temperature": 0}
    response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 200 and response.json()["model"] == name
    assert response.json()["choices"][0]["message"]["role"] == "assistant"


def test_runs_of_different_effective_bases_are_not_served_on_one(init_from_run, lora_run, error_of):
    sft, continued = (RunDir(root).config() for root in (lora_run, init_from_run))
    base = portable_name(sft.model)
    assert effective_base(sft.model) != effective_base(continued.model)
    assert effective_base(sft.model)[:2] == effective_base(continued.model)[:2]  # the same pretrained model
    message = error_of(lambda: load_served([str(lora_run), str(init_from_run)], device=CPU))
    assert message == (
        f"{Path(init_from_run).name} was trained on the run {Path(lora_run).name} ({base}), "
        f"{Path(lora_run).name} on {base}: adapters served together need one base (serve runs of "
        "different bases with separate `tunesmith serve` commands)")
