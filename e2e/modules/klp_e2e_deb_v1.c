// SPDX-License-Identifier: GPL-2.0
/* klp_e2e_deb_v1 - version 1 of the packaged patch (see klp_e2e_deb.h). */
#define KLP_E2E_DEB_VERSION "1"
#include "klp_e2e_deb.h"
