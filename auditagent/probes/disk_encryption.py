from auditagent.probes._linux_disk import linux  # noqa: F401
from auditagent.probes._windows_disk import windows  # noqa: F401
from auditagent.probes._macos_disk import macos  # noqa: F401
