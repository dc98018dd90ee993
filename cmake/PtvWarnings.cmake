# Warnings probed before use (lwan's EnableCFlag habit), errors only when PTV_WERROR is on.
include(CheckCCompilerFlag)
set(PTV_WARNINGS -Wall -Wextra)
foreach(flag -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla
		-Wpointer-arith -Wno-unused-parameter -Wno-missing-field-initializers)
	string(MAKE_C_IDENTIFIER "HAVE${flag}" var)
	check_c_compiler_flag(${flag} ${var})
	if(${var})
		list(APPEND PTV_WARNINGS ${flag})
	endif()
endforeach()
if(PTV_WERROR)
	list(APPEND PTV_WARNINGS -Werror)
endif()
