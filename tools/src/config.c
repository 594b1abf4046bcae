/*
 * Configuration of the hivent client: built-in defaults, then the config
 * file, then HIVENT_* environment variables, then command-line options.
 *
 * The config file contains "key = value" lines with libhivent key names, plus
 * admin_key for the dlq commands.  Blank lines and lines starting with #
 * are ignored; a value may be wrapped in double quotes to keep spaces.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define CONFIG_LINE_MAX 65536
#define ADMIN_KEY_NAME "admin_key"

/* Defaults of the client that differ from libhivent's.  Logs are taken
 * through notices, and only critical ones are kept because the client
 * reports every error itself.  The shorter reconnect delay makes a command
 * give up within about two seconds when the server is down.  The commands
 * wait for every delivery report before closing, so the client's own
 * flush on destroy only delays an exit after a fatal error. */
static const char *const cli_defaults[][2] = {
    {"log.queue", "true"},
    {"log_level", "2"},
    {"reconnect_backoff_time", "250"},
    {"flush_timeout", "0"},
};

/* Prints where configuration.md is installed, found relative to the
 * executable (BINDIR/../DOCDIR), as `cmake --install` lays it out. */
static void print_key_docs_hint(void)
{
    char exe[PATH_MAX];
    char doc[PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);

    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        snprintf(doc, sizeof doc, "%s/../%s/configuration.md", exe, HIVENT_CLI_DOCDIR);
        char *resolved = realpath(doc, NULL);
        if (resolved) {
            cli_error("the configuration keys are described in %s", resolved);
            free(resolved);
            return;
        }
    }
    cli_error("the configuration keys are described in docs/configuration.md of the "
              "source tree, which 'cmake --install' copies to %s/configuration.md",
              HIVENT_CLI_DOCDIR);
}

static int set_key(hivent_conf_t *conf, const char *key, const char *value, const char *source)
{
    char errstr[512];
    hivent_err_t err = hivent_conf_set(conf, key, value, errstr, sizeof errstr);
    if (err == HIVENT_OK)
        return 0;
    cli_error("%s: %s", source, errstr);
    if (err == HIVENT_ERR_UNKNOWN_KEY)
        print_key_docs_hint();
    return -1;
}

static char *default_config_path(void)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    char *path = NULL;

    /* The XDG base directory specification ignores relative paths. */
    if (xdg && xdg[0] == '/') {
        if (asprintf(&path, "%s/hivent/config", xdg) < 0)
            return NULL;
        return path;
    }
    if (!home || !home[0]) {
        struct passwd *pw = getpwuid(getuid());
        home = pw ? pw->pw_dir : NULL;
    }
    if (!home || asprintf(&path, "%s/.config/hivent/config", home) < 0)
        return NULL;
    return path;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        s[--len] = '\0';
    return s;
}

static int valid_key_name(const char *key)
{
    if (!*key)
        return 0;
    for (const char *p = key; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
            return 0;
    }
    return 1;
}

/* Splits one line into key and value.  Returns 1 for a setting, 0 for a
 * blank or comment line, -1 after printing an error. */
static int parse_line(char *line, const char *where, char **key, char **value)
{
    char *text = trim(line);
    if (*text == '\0' || *text == '#')
        return 0;
    char *eq = strchr(text, '=');
    if (!eq) {
        cli_error("%s: expected 'key = value', found '%.40s'", where, text);
        return -1;
    }
    *eq = '\0';
    *key = trim(text);
    *value = trim(eq + 1);
    if (!valid_key_name(*key)) {
        cli_error("%s: invalid key '%.40s'; keys contain letters, digits, "
                  "'.', '_' and '-'",
                  where, *key);
        return -1;
    }
    size_t len = strlen(*value);
    if (len >= 2 && (*value)[0] == '"' && (*value)[len - 1] == '"') {
        (*value)[len - 1] = '\0';
        (*value)++;
    }
    return 1;
}

static void warn_if_readable(const char *path, int fd)
{
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
        cli_warn("%s holds a key and other users can read it; run "
                 "'chmod 600 %s'",
                 path, path);
}

/* Applies one config file setting.  Returns 1 when it was a key, 0 for
 * another setting, -1 on error. */
static int apply_setting(struct cli_config *cfg, const char *key, const char *value,
                         const char *where)
{
    if (strcmp(key, ADMIN_KEY_NAME) == 0) {
        free(cfg->admin_key);
        cfg->admin_key = strdup(value);
        return cfg->admin_key ? 1 : -1;
    }
    if (set_key(cfg->conf, key, value, where) != 0)
        return -1;
    return strcmp(key, "server.api_key") == 0 ? 1 : 0;
}

static int load_file(struct cli_config *cfg, const char *path, int required)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (!required && errno == ENOENT)
            return 0;
        cli_error("cannot read config file '%s': %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int rc = 0, holds_key = 0;

    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        char where[1024], *key, *value;
        lineno++;
        snprintf(where, sizeof where, "%s:%ld", path, lineno);
        if (len > CONFIG_LINE_MAX || strlen(line) != (size_t)len) {
            cli_error("%s: line is longer than %d bytes or contains a NUL byte", where,
                      CONFIG_LINE_MAX);
            rc = -1;
            break;
        }
        int kind = parse_line(line, where, &key, &value);
        if (kind < 0) {
            rc = -1;
        } else if (kind > 0) {
            int applied = apply_setting(cfg, key, value, where);
            if (applied < 0)
                rc = -1;
            holds_key |= applied > 0;
        }
    }
    if (rc == 0 && ferror(f)) {
        cli_error("cannot read config file '%s': %s", path, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && holds_key)
        warn_if_readable(path, fileno(f));
    free(line);
    fclose(f);
    return rc;
}

static int apply_set_option(struct cli_config *cfg, const char *assignment)
{
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment) {
        cli_error("invalid --set '%s': expected KEY=VALUE", assignment);
        return -1;
    }
    char key[256];
    size_t key_len = (size_t)(eq - assignment);
    if (key_len >= sizeof key) {
        cli_error("invalid --set: key longer than %zu bytes", sizeof key - 1);
        return -1;
    }
    memcpy(key, assignment, key_len);
    key[key_len] = '\0';
    if (strcmp(key, "server.api_key") == 0 || strcmp(key, ADMIN_KEY_NAME) == 0) {
        cli_error("--set %s would show the key in process listings; use "
                  "--api-key-file or --admin-key-file, or the environment",
                  key);
        return -1;
    }
    char source[300];
    snprintf(source, sizeof source, "--set %s", key);
    return set_key(cfg->conf, key, eq + 1, source);
}

static int apply_flags(struct cli_config *cfg, const struct cli_options *opts)
{
    hivent_conf_t *conf = cfg->conf;

    if (opts->verbose > 0 &&
        set_key(conf, "log_level", opts->verbose > 1 ? "debug" : "info", "-v") != 0)
        return -1;
    if (opts->host && set_key(conf, "server.host", opts->host, "--host") != 0)
        return -1;
    if (opts->port && set_key(conf, "server.port", opts->port, "--port") != 0)
        return -1;
    if (opts->secure && set_key(conf, "server.secure", "true", "--secure") != 0)
        return -1;
    if (opts->client_id && set_key(conf, "client_id", opts->client_id, "--client-id") != 0)
        return -1;
    for (int i = 0; i < opts->set_count; i++) {
        if (apply_set_option(cfg, opts->sets[i]) != 0)
            return -1;
    }
    if (opts->api_key_file) {
        char *key = cli_read_secret_file(opts->api_key_file, "API key");
        if (!key)
            return -1;
        int rc = set_key(conf, "server.api_key", key, "--api-key-file");
        memset(key, 0, strlen(key));
        free(key);
        if (rc != 0)
            return -1;
    }
    if (opts->admin_key_file) {
        char *key = cli_read_secret_file(opts->admin_key_file, "admin key");
        if (!key)
            return -1;
        free(cfg->admin_key);
        cfg->admin_key = key;
    }
    return 0;
}

static int load_env(struct cli_config *cfg)
{
    char errstr[512];
    if (hivent_conf_load_env(cfg->conf, errstr, sizeof errstr) != HIVENT_OK) {
        cli_error("environment: %s", errstr);
        return -1;
    }
    const char *admin_key = getenv("HIVENT_ADMIN_KEY");
    if (admin_key && admin_key[0]) {
        free(cfg->admin_key);
        cfg->admin_key = strdup(admin_key);
        if (!cfg->admin_key)
            return -1;
    }
    return 0;
}

int cli_config_load(struct cli_config *cfg, const struct cli_options *opts)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->conf = hivent_conf_new();
    if (!cfg->conf) {
        cli_error("out of memory creating the configuration");
        return CLI_EXIT_USAGE;
    }
    for (size_t i = 0; i < sizeof cli_defaults / sizeof cli_defaults[0]; i++) {
        if (set_key(cfg->conf, cli_defaults[i][0], cli_defaults[i][1], "built-in default") != 0)
            goto fail;
    }

    int required = opts->config_path != NULL;
    cfg->config_path = required ? strdup(opts->config_path) : default_config_path();
    if (cfg->config_path && load_file(cfg, cfg->config_path, required) != 0)
        goto fail;
    if (load_env(cfg) != 0 || apply_flags(cfg, opts) != 0)
        goto fail;
    return CLI_EXIT_OK;

fail:
    cli_config_free(cfg);
    return CLI_EXIT_USAGE;
}

void cli_config_free(struct cli_config *cfg)
{
    hivent_conf_destroy(cfg->conf);
    if (cfg->admin_key) {
        memset(cfg->admin_key, 0, strlen(cfg->admin_key));
        free(cfg->admin_key);
    }
    free(cfg->config_path);
    memset(cfg, 0, sizeof *cfg);
}

void cli_config_get(const hivent_conf_t *conf, const char *key, char *dest, size_t dest_size)
{
    size_t size = dest_size;
    if (hivent_conf_get(conf, key, dest, &size) != HIVENT_OK || size > dest_size)
        dest[0] = '\0';
}
