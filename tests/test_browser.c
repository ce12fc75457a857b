/*
 * index.html in a real browser: headless Chromium loads the demo report
 * and takes a screenshot; the screenshot must show the pictures, i.e. the
 * demo scene's own colours (its red disc and blue square, from input.png)
 * and the ends of the viridis map (from the grids). With a broken page or
 * missing images only text and white would be there.
 * Skips with a message when Chromium is not installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <cnnviz.h>

static const char *browser(void)
{
	static const char *const candidates[] = {"/usr/bin/chromium",
						 "/usr/bin/chromium-browser",
						 "/usr/bin/google-chrome"};
	for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++)
		if (access(candidates[i], X_OK) == 0)
			return candidates[i];
	return NULL;
}

/* Pixels within tol of an RGB colour. */
static long count_near(const cnnviz_image *img, int r, int g, int b, int tol)
{
	const uint8_t *p = cnnviz_image_pixels(img);
	long n = 0, px = cnnviz_image_width(img) * cnnviz_image_height(img);
	if (cnnviz_image_channels(img) != 3)
		return 0;
	for (long i = 0; i < px; i++, p += 3)
		if (abs(p[0] - r) <= tol && abs(p[1] - g) <= tol && abs(p[2] - b) <= tol)
			n++;
	return n;
}

static void report_renders_in_chromium(void **state)
{
	(void)state;
	const char *chrome = browser();
	if (!chrome) {
		printf("  SKIP: no Chromium (Debian package chromium); CI installs it\n");
		skip();
	}
	char dir[] = "/tmp/cnnviz-test-browser-XXXXXX";
	assert_non_null(mkdtemp(dir));
	const char *tool = getenv("CNNVIZ_TOOL");
	char cmd[4096], cwd[2048], shot[300];
	assert_non_null(getcwd(cwd, sizeof cwd));
	snprintf(cmd, sizeof cmd,
		 "%s examples/demo/demo_model.h5 examples/demo/demo.png -o %s/out -q --layers all",
		 tool && *tool ? tool : "build/cnnviz-dump", dir);
	assert_int_equal(system(cmd), 0);
	snprintf(shot, sizeof shot, "%s/shot.png", dir);
	/* Flags as this machine's probe ran it: no network, no sandbox as root. */
	snprintf(cmd, sizeof cmd,
		 "timeout 120 %s --headless --no-sandbox --disable-gpu --disable-quic "
		 "--no-first-run --disable-background-networking --disable-component-update "
		 "--disable-sync --hide-scrollbars --user-data-dir=%s/profile "
		 "--window-size=1400,2400 --screenshot=%s file://%s/out/demo/index.html "
		 ">/dev/null 2>&1",
		 chrome, dir, shot, dir);
	assert_int_equal(system(cmd), 0);
	cnnviz_image *img = NULL;
	struct cnnviz_error e;
	assert_int_equal(cnnviz_image_load(shot, NULL, &img, &e), CNNVIZ_OK);
	long red = count_near(img, 220, 40, 40, 12);
	long blue = count_near(img, 40, 70, 210, 12);
	long dark = count_near(img, 0x44, 0x01, 0x54, 10);
	long yellow = count_near(img, 0xfd, 0xe7, 0x25, 10);
	printf("  screenshot %lldx%lld: red %ld, blue %ld, viridis dark %ld, yellow %ld px\n",
	       (long long)cnnviz_image_width(img), (long long)cnnviz_image_height(img),
	       red, blue, dark, yellow);
	/* input.png is the 96x96 scene enlarged 6x: its disc covers ~2e4 px. */
	assert_true(red > 5000);
	assert_true(blue > 5000);
	assert_true(dark > 2000);
	assert_true(yellow > 500);
	cnnviz_image_free(img);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(report_renders_in_chromium),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
