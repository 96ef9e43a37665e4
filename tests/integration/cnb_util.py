"""A tiny CNB builder image for the provision tests: busybox, /cnb/order.toml
and one shell buildpack (Buildpack API 0.10) whose bin/detect passes when the
app has `hello.txt` and whose bin/build makes a launch layer `web` with a
`bin/serve` script and env.launch files, copies BP_GREETING (build env) into
the app, and declares a default `web` process. With BP_EXECD set the layer
also gets an exec.d program `hello` (FROM_EXECD = "yes")."""
import json

import oci_build as ob
from image_util import load_image

BUILDPACK_TOML = """\
api = "0.10"
[buildpack]
id = "examples/hello"
version = "0.1.0"
[[targets]]
os = "linux"
"""

DETECT = """\
#!/bin/sh
if [ -f hello.txt ]; then
  echo "hello.txt found"
  exit 0
fi
echo "no hello.txt in $(pwd): this app is not for examples/hello"
exit 100
"""

BUILD = """\
#!/bin/sh
set -e
echo "building in $(pwd) as $(id -u):$(id -g)"
L="$1/web"
mkdir -p "$L/bin" "$L/env.launch"
cat > "$L/bin/serve" <<'EOT'
#!/bin/sh
env > served-env
echo "serving $(cat hello.txt) on $PORT"
exec /bin/busybox httpd -f -p "127.0.0.1:$PORT" -h .
EOT
chmod 755 "$L/bin/serve"
printf '%s' "$L" > "$L/env.launch/WEB_HOME"
if [ -n "$BP_EXECD" ]; then
  mkdir -p "$L/exec.d"
  printf '#!/bin/sh\necho "FROM_EXECD = \\"yes\\"" >&3\n' > "$L/exec.d/hello"
  chmod 755 "$L/exec.d/hello"
fi
printf 'hi' > "$L/env.launch/GREETING.default"
printf '[types]\\nlaunch = true\\n' > "$1/web.toml"
mkdir -p "$1/build-only"
printf '[types]\\nbuild = true\\n' > "$1/build-only.toml"
printf '%s' "$BP_GREETING" > built.txt
cat > "$1/launch.toml" <<'EOT'
[[processes]]
type = "web"
command = ["serve"]
default = true
EOT
"""


def builder_files():
    files = ob.busybox_files(applets=("sh", "ls", "cat", "echo", "true", "false", "sleep", "env",
                                      "id", "mkdir", "rm", "touch", "printf", "test", "[", "chmod",
                                      "pwd"))
    files["etc/passwd"] = ("root:x:0:0:root:/root:/bin/sh\n"
                           "cnb:x:1002:1003:cnb:/home/cnb:/bin/sh\n")
    files["etc/group"] = "root:x:0:\ncnb:x:1003:\n"
    files["home"] = ob.Dir()
    files["home/cnb"] = ob.Dir(mode=0o777)
    files["cnb"] = ob.Dir()
    files["cnb/order.toml"] = ('[[order]]\n[[order.group]]\nid = "examples/hello"\n'
                               'version = "0.1.0"\n')
    bp = "cnb/buildpacks/examples_hello/0.1.0"
    files["cnb/buildpacks"] = ob.Dir()
    files["cnb/buildpacks/examples_hello"] = ob.Dir()
    files[bp] = ob.Dir()
    files[f"{bp}/bin"] = ob.Dir()
    files[f"{bp}/buildpack.toml"] = BUILDPACK_TOML
    files[f"{bp}/bin/detect"] = ob.File(DETECT.encode(), mode=0o755)
    files[f"{bp}/bin/build"] = ob.File(BUILD.encode(), mode=0o755)
    return files


def builder_config():
    metadata = {"buildpacks": [{"id": "examples/hello", "version": "0.1.0"}],
                "lifecycle": {"version": "0.21.0"}}
    return {"Env": ["PATH=/usr/bin:/bin", "CNB_USER_ID=1002", "CNB_GROUP_ID=1003"],
            "Labels": {"io.buildpacks.builder.metadata": json.dumps(metadata),
                       "io.buildpacks.stack.id": "io.buildpacks.stacks.test"},
            "WorkingDir": "/"}


def load_builder(scratch, ref="registry.test/builder:1"):
    load_image(scratch, ref, builder_files(), builder_config(), name="builder")
    return ref
