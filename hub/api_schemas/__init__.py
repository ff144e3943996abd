"""The public API's contract: request and response models, one module per area.

Blueprints import their models from here; `hub.api_schemas.openapi` turns them into the
document served at `/api/v1/openapi.json`. `common` holds what every area shares: the
strict base model, the error body and the `responds` decorator that validates a
handler's answer against its model (a mismatch is the hub's bug, so it is a 500).
"""
