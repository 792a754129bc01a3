from auditagent.probes._linux_screen_lock import linux  # noqa: F401
from auditagent.probes._windows_screen_lock import windows  # noqa: F401
from auditagent.probes._macos_screen_lock import macos  # noqa: F401
