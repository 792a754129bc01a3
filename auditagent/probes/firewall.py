from auditagent.probes._linux_firewall import linux  # noqa: F401
from auditagent.probes._windows_firewall import windows  # noqa: F401
from auditagent.probes._macos_firewall import macos  # noqa: F401
