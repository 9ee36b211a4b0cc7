"""The IdP's Chalice app: build it, register the blueprints, prepare the container (chalicelib/runtime.py)."""
from chalicelib import runtime
from chalicelib.blueprints import (
    account, authorize, device, fallback, federation, logout_delivery, mfa, recovery, registration, rotation, signup, token,
    userinfo, wellknown,
)
from chalicelib.front_door import FrontDoorChalice

# Chalice, taking events from a REST API or an HTTP API (API_FRONT_DOOR, docs/deploy.md).
app = FrontDoorChalice(app_name="serverless-idp")
# Chalice would otherwise return tracebacks in debug mode; errors are rendered by chalicelib.web.
app.debug = False

app.register_blueprint(wellknown.bp)
app.register_blueprint(authorize.bp)
app.register_blueprint(signup.bp)
app.register_blueprint(recovery.bp)
app.register_blueprint(account.bp)
app.register_blueprint(mfa.bp)
app.register_blueprint(device.bp)
app.register_blueprint(federation.bp)
app.register_blueprint(token.bp)
app.register_blueprint(userinfo.bp)
app.register_blueprint(registration.bp)
app.register_blueprint(rotation.bp)
app.register_blueprint(logout_delivery.bp)
app.register_blueprint(fallback.bp)

# On Lambda: build the clients and connections at init, register the SnapStart restore hook.
runtime.initialize()
