package keyring

import (
	"fmt"
	"os"
	"strings"
)

// unavailableHint tells the user what to do when the keychain is unreachable.
const unavailableHint = "start a Secret Service such as gnome-keyring in your session"

// sessionBusReady makes sure a go-keyring call cannot start a D-Bus daemon:
// godbus runs dbus-launch when DBUS_SESSION_BUS_ADDRESS is unset (or
// "autolaunch:"), leaving a stray daemon behind. The systemd user bus socket
// is used when it exists. This reads and sets the real process environment,
// not an injected one, because that is what godbus reads.
func sessionBusReady() error {
	if addr := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); addr != "" && !strings.HasPrefix(addr, "autolaunch:") {
		return nil
	}
	sock := fmt.Sprintf("/run/user/%d/bus", os.Getuid())
	if fi, err := os.Stat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
		return os.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+sock)
	}
	return fmt.Errorf("%w: no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is unset and %s does not exist)", ErrKeychainUnavailable, sock)
}
