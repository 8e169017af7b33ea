package keyring

import (
	"errors"
	"fmt"
	"os"
)

// sessionBusReady makes sure a go-keyring call cannot start a D-Bus daemon:
// godbus runs dbus-launch when DBUS_SESSION_BUS_ADDRESS is unset, leaving a
// stray daemon behind. The systemd user bus socket is used when it exists.
func sessionBusReady() error {
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") != "" {
		return nil
	}
	sock := fmt.Sprintf("/run/user/%d/bus", os.Getuid())
	if fi, err := os.Stat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
		return os.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+sock)
	}
	return errors.New("no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is unset and " + sock + " does not exist)")
}
