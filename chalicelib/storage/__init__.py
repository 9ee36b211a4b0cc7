"""DynamoDB storage: pynamodb models (models.py), table specs (tables.py), narrow repositories."""


def prepare() -> None:
    """Build every model's table connection on the container's one DynamoDB client (at init, see
    chalicelib/runtime.py), so no request pays for it."""
    from .models import ALL_MODELS

    for model in ALL_MODELS:
        model._get_connection()
