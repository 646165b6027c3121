/* Input to regenerate-bindings.sh: libsigrok's public API and the few GLib
 * functions the safe wrapper calls. */
#include <glib.h>
#include <libsigrok/libsigrok.h>
