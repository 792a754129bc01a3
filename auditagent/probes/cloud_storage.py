from auditagent.probes._linux_cloud import linux  # noqa: F401
from auditagent.probes._windows_cloud import windows  # noqa: F401
from auditagent.probes._macos_cloud import macos  # noqa: F401
