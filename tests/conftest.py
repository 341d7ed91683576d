"""Fixtures shared by several test folders."""

from dataclasses import asdict

import pytest


@pytest.fixture(scope="session")
def train_mlp_digits(tmp_path_factory):
    """``train_mlp_digits(steps)``: the path of an ``mlp_digits`` checkpoint after ``steps`` AdamW
    steps (lr 3e-3, batches of 64, seed 0), saved as ``rf8hw train`` does; trained once per
    ``steps`` per session.  One torch thread: tiny GEMMs gain nothing from more, and on a busy
    machine they lose a lot."""
    import torch

    from rf8hw.nn.checkpoint import save_checkpoint
    from rf8hw.zoo import mlp_digits

    made = {}

    def train(steps: int):
        if steps not in made:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                torch.manual_seed(0)
                model = mlp_digits.build()
                data = mlp_digits.Data()
                opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
                gen = torch.Generator().manual_seed(0)
                for _ in range(steps):
                    x, y = data.batch(gen, 64)
                    loss = model(x, y)[1]
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            finally:
                torch.set_num_threads(threads)
            path = tmp_path_factory.mktemp(f"mlp_digits_{steps}") / "model.safetensors"
            save_checkpoint(model, path, {"model": "mlp_digits", "model_config": asdict(model.config)})
            made[steps] = path
        return made[steps]

    return train
