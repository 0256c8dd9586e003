# Packaging: `cpack -G DEB` in a build directory makes spotgrid_<version>_<arch>.deb holding
# /usr/bin/agent, /usr/bin/controller, the spotgrid-agent systemd unit, the default
# /etc/spotgrid/agent.env (a conffile) and maintainer scripts that create the `spotgrid`
# system user units run as (packaging/debian/).
#
#   cmake --build build --target agent controller && (cd build && cpack -G DEB)
#
# Installing does not build the whole tree first (CMAKE_SKIP_INSTALL_ALL_DEPENDENCY): the
# package needs two programs, not every test; build them before cpack, as above.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

# Who answers for the package; set it to a real address when publishing it.
set(SPOTGRID_PACKAGE_MAINTAINER "spotgrid maintainers <spotgrid@example.org>"
    CACHE STRING "The Maintainer field of the .deb")

set(SPOTGRID_DEBIAN_DIR ${CMAKE_SOURCE_DIR}/packaging/debian)
set(SPOTGRID_DEBIAN_BUILD_DIR ${CMAKE_BINARY_DIR}/packaging/debian)

# /etc, the unit and the documentation have fixed places on a Debian system, whatever
# CMAKE_INSTALL_PREFIX says; `cmake --install` outside a package needs DESTDIR for them.
install(FILES ${CMAKE_SOURCE_DIR}/systemd/spotgrid-agent.service
        DESTINATION /lib/systemd/system PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES ${CMAKE_SOURCE_DIR}/systemd/agent.env
        DESTINATION /etc/spotgrid PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

# Debian's documentation files: copyright, and the changelog compressed reproducibly (-n).
configure_file(${SPOTGRID_DEBIAN_DIR}/changelog.in ${SPOTGRID_DEBIAN_BUILD_DIR}/changelog @ONLY)
execute_process(
  COMMAND gzip -9 -n -c ${SPOTGRID_DEBIAN_BUILD_DIR}/changelog
  OUTPUT_FILE ${SPOTGRID_DEBIAN_BUILD_DIR}/changelog.gz
  RESULT_VARIABLE spotgrid_gzip_result)
if(NOT spotgrid_gzip_result EQUAL 0)
  message(FATAL_ERROR "gzip of the Debian changelog failed: ${spotgrid_gzip_result}")
endif()
set(SPOTGRID_DOC_DIR /usr/share/doc/spotgrid)
install(FILES ${SPOTGRID_DEBIAN_DIR}/copyright ${SPOTGRID_DEBIAN_BUILD_DIR}/changelog.gz
              ${CMAKE_SOURCE_DIR}/README.md
        DESTINATION ${SPOTGRID_DOC_DIR}
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES ${CMAKE_SOURCE_DIR}/systemd/spotgrid-agent.service.d/relax.conf.example
        DESTINATION ${SPOTGRID_DOC_DIR}/spotgrid-agent.service.d
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

# dpkg marks nothing as a conffile by itself; CPack takes the list as a control file.
file(WRITE ${SPOTGRID_DEBIAN_BUILD_DIR}/conffiles "/etc/spotgrid/agent.env\n")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME spotgrid)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "spotgrid")
set(CPACK_PACKAGE_CONTACT "${SPOTGRID_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "run grids of shell commands on EC2 Spot fleets")
# CPack takes the summary as the synopsis and this as the extended description, indenting
# each line and writing an empty one as " .".
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "spotgrid runs every row of a grid (a CSV of parameters and a command
template) as a unit of work on an Auto Scaling group of EC2 Spot workers,
tracking each unit in a DynamoDB ledger, queuing them in SQS and keeping
outputs and checkpoints in S3.

This package holds the controller (the command line that creates a stack,
enqueues grids and follows their progress) and the agent, the daemon each
worker runs (spotgrid-agent.service), with the unprivileged `spotgrid` user
its units run as.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Shared libraries by dpkg-shlibdeps; the rest: the maintainer scripts' tools, the CA
# certificates every HTTPS call to AWS verifies against.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser, ca-certificates, init-system-helpers (>= 1.54)")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${SPOTGRID_DEBIAN_DIR}/postinst ${SPOTGRID_DEBIAN_DIR}/prerm ${SPOTGRID_DEBIAN_DIR}/postrm
    ${SPOTGRID_DEBIAN_BUILD_DIR}/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
