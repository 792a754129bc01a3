from auditagent.probes._linux_os import linux  # noqa: F401
from auditagent.probes._windows_os import windows  # noqa: F401
from auditagent.probes._macos_os import macos  # noqa: F401
