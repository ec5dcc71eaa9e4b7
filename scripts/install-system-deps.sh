#!/usr/bin/env bash
# Installs the Debian packages MusicBrain needs, only when something is missing:
#   fluidsynth + three General MIDI SoundFonts  -> rendering symbolic music (training data)
#   libpango / libpangoft2                       -> WeasyPrint (PDF reports)
#   poppler-utils                                -> pdfsig, an independent PDF signature check
#   fonts-wqy-microhei                           -> Chinese, Japanese and Korean characters in
#                                                   PDF reports (file names, tags), 1.6 MB
#   libcodec2-1.0                                -> LPCNet, a real trained neural decoder the
#                                                   artifact line is measured on (8 MB; tests)
set -euo pipefail
need=()
command -v fluidsynth >/dev/null 2>&1 || need+=(fluidsynth)
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || need+=(fluid-soundfont-gm)
[ -f /usr/share/sounds/sf2/TimGM6mb.sf2 ] || need+=(timgm6mb-soundfont)
[ -f /usr/share/sounds/sf3/MuseScore_General_Lite.sf3 ] || need+=(musescore-general-soundfont-small)
ldconfig -p 2>/dev/null | grep -q 'libpango-1.0.so' || need+=(libpango-1.0-0)
ldconfig -p 2>/dev/null | grep -q 'libpangoft2-1.0.so' || need+=(libpangoft2-1.0-0)
ldconfig -p 2>/dev/null | grep -q 'libharfbuzz-subset.so' || need+=(libharfbuzz-subset0)
command -v pdfsig >/dev/null 2>&1 || need+=(poppler-utils)
[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
ldconfig -p 2>/dev/null | grep -q 'libcodec2.so.1.0' || need+=(libcodec2-1.0)
if [ ${#need[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
echo "system packages: installing ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "need root or sudo to install: ${need[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
