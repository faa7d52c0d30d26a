import pytest

from avatar.tiny_body import make_tiny_body
from thgs.body.model import BodyModel


@pytest.fixture
def tiny_body() -> BodyModel:
    return make_tiny_body()
