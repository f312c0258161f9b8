import pytest
import torch

from bnutils.config import device, get_scale, pick, seed_everything


def test_scale_default_and_env(monkeypatch):
    monkeypatch.delenv("BNBOOK_SCALE", raising=False)
    assert get_scale() == "book"
    monkeypatch.setenv("BNBOOK_SCALE", "smoke")
    assert get_scale() == "smoke"
    assert pick(smoke=1, book=2, paper=3) == 1
    monkeypatch.setenv("BNBOOK_SCALE", "paper")
    assert pick(smoke=1, book=2, paper=3) == 3
    assert pick(smoke=1, book=2) == 2  # paper falls back to book


def test_unknown_scale_names_the_choices(monkeypatch):
    monkeypatch.setenv("BNBOOK_SCALE", "huge")
    with pytest.raises(ValueError, match="BNBOOK_SCALE must be one of 'smoke', 'book', 'paper', got 'huge'"):
        get_scale()


def test_device_is_cpu_here_or_env(monkeypatch):
    monkeypatch.delenv("BNBOOK_DEVICE", raising=False)
    assert device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("BNBOOK_DEVICE", "cpu")
    assert device() == torch.device("cpu")


def test_seed_everything_is_repeatable():
    seed_everything(3)
    a = torch.rand(3)
    seed_everything(3)
    assert torch.equal(a, torch.rand(3))
    with pytest.raises(TypeError, match="seed must be an int"):
        seed_everything(1.5)


def test_threads(monkeypatch):
    from bnutils.config import set_threads

    old = torch.get_num_threads()
    try:
        assert set_threads(2) == 2 and torch.get_num_threads() == 2
        monkeypatch.setenv("BNBOOK_THREADS", "1")
        assert set_threads() == 1 and torch.get_num_threads() == 1
        with pytest.raises(ValueError, match="BNBOOK_THREADS must be a positive int"):
            set_threads(0)
    finally:
        torch.set_num_threads(old)
