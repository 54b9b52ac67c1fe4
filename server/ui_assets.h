/* ui_assets.h: the dashboard's files (server/ui/), compiled into flowd by server/embed_ui.sh, which
 * make runs into $(BUILD)/gen/ui_assets.c. http_ui.c serves them at /ui/. Static data: any thread. */
#ifndef FLOWD_UI_ASSETS_H
#define FLOWD_UI_ASSETS_H

#include <stddef.h>

typedef struct flowd_ui_asset {
    const char *name; /* as under /ui/, e.g. "app.js" */
    const char *type; /* its Content-Type */
    const char *etag; /* its ETag, quoted: the first 80 bits of its SHA-256 */
    const unsigned char *data;
    size_t len;
} flowd_ui_asset_t;

extern const flowd_ui_asset_t flowd_ui_assets[];
extern const size_t flowd_ui_nassets;

#endif
