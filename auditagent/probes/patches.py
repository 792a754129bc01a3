from auditagent.probes._linux_patches import linux  # noqa: F401
from auditagent.probes._windows_patches import windows  # noqa: F401
from auditagent.probes._macos_patches import macos  # noqa: F401
