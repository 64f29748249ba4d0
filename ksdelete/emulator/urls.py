"""URL map moto derives from ``models.py`` (``<pkg>.models`` -> ``<pkg>.urls``)."""

from .responses import EmulatorKmsResponse

url_bases = [r"https?://kms\.(.+)\.amazonaws\.com"]

url_paths = {"{0}/$": EmulatorKmsResponse.dispatch}
