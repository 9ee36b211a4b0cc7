"""DynamoDB storage: pynamodb models (models.py), table specs (tables.py), narrow repositories."""
